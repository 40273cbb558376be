# The optional CUDA backend: target ctmllm::cuda (cudart, cuBLAS, cuBLASLt, cuDNN; sm_90) when the
# toolkit and cuDNN are present. Everything else builds and tests without it. Used both by the
# project's own build and by installed consumers (through ctmllmConfig.cmake), so it only finds
# libraries and defines an INTERFACE IMPORTED target: nothing compiles here, and a machine with the
# toolkit but no GPU (or no driver) configures and links the same way.
#
# The GPU kernels are CUDA C++ in headers (include/ctmllm/ops/cuda/*.cuh), reached from the op fronts
# only in .cu files: a project that calls ops on Cuda tensors compiles those files with nvcc, after
# ctmllm_enable_cuda_language() below (the project's own build calls it for its GPU tests).
#
# In:  CTMLLM_ENABLE_CUDA (ON/OFF). Out: CTMLLM_HAVE_CUDA, and ctmllm::cuda when it is ON.
set(CTMLLM_HAVE_CUDA OFF)
if(CTMLLM_ENABLE_CUDA AND NOT TARGET ctmllm::cuda)
  find_package(CUDAToolkit QUIET)
  if(CUDAToolkit_FOUND)
    find_path(CTMLLM_CUDNN_INCLUDE_DIR cudnn.h
      HINTS ${CUDAToolkit_INCLUDE_DIRS} /usr/include /usr/include/x86_64-linux-gnu /usr/local/include)
    find_library(CTMLLM_CUDNN_LIBRARY cudnn
      HINTS ${CUDAToolkit_LIBRARY_DIR} /usr/lib/x86_64-linux-gnu)
    if(CTMLLM_CUDNN_INCLUDE_DIR AND CTMLLM_CUDNN_LIBRARY AND TARGET CUDA::cudart AND TARGET CUDA::cublas
       AND TARGET CUDA::cublasLt)
      # IMPORTED (no build rules, a name a consumer cannot collide with) and GLOBAL (visible from every
      # directory, also when ctmllm is an add_subdirectory). Its link items (CUDA::*, ctmllm::ctmllm)
      # resolve in this directory's scope, so callers need not see the CUDA:: targets themselves.
      add_library(ctmllm::cuda INTERFACE IMPORTED GLOBAL)
      # In .cu files: Eigen (reached through core/parallel.hpp) stays host-only, as in .cpp files
      # (its CUDA mode floods nvcc with warnings and is never used), and the host pass gets OpenMP
      # like .cpp files do, so inline CPU code means the same in both.
      target_compile_definitions(ctmllm::cuda INTERFACE CTMLLM_WITH_CUDA=1 $<$<COMPILE_LANGUAGE:CUDA>:EIGEN_NO_CUDA>)
      target_compile_options(ctmllm::cuda INTERFACE $<$<COMPILE_LANGUAGE:CUDA>:-Xcompiler=-fopenmp>)
      target_include_directories(ctmllm::cuda INTERFACE ${CTMLLM_CUDNN_INCLUDE_DIR})
      target_link_libraries(ctmllm::cuda INTERFACE ctmllm::ctmllm CUDA::cudart CUDA::cublas CUDA::cublasLt
                                                   ${CTMLLM_CUDNN_LIBRARY})
      if(NOT CTMLLM_CUDA_QUIET)
        message(STATUS "ctmllm: CUDA ${CUDAToolkit_VERSION} at ${CUDAToolkit_BIN_DIR}, cuDNN ${CTMLLM_CUDNN_LIBRARY}: ctmllm::cuda available")
      endif()
    elseif(NOT CTMLLM_CUDA_QUIET)
      message(STATUS "ctmllm: CUDA toolkit ${CUDAToolkit_VERSION} found but cuDNN or cuBLAS(Lt) is missing: no ctmllm::cuda")
    endif()
  elseif(NOT CTMLLM_CUDA_QUIET)
    message(STATUS "ctmllm: no CUDA toolkit found: CPU backend only")
  endif()
endif()
if(TARGET ctmllm::cuda)
  set(CTMLLM_HAVE_CUDA ON)
endif()

# Enables CUDA C++ for the caller's directory (a macro: enable_language must run at file scope), for
# .cu files that include the kernels: sm_90 (H200) unless CMAKE_CUDA_ARCHITECTURES is set (never
# `native`: build machines may have no GPU), C++20, and the shared CUDA runtime, the one ctmllm::cuda
# links (a second, static copy would keep its own device state).
macro(ctmllm_enable_cuda_language)
  if(NOT DEFINED CMAKE_CUDA_ARCHITECTURES)
    set(CMAKE_CUDA_ARCHITECTURES 90)
  endif()
  if(NOT DEFINED CMAKE_CUDA_COMPILER AND NOT DEFINED ENV{CUDACXX} AND CUDAToolkit_NVCC_EXECUTABLE)
    set(CMAKE_CUDA_COMPILER ${CUDAToolkit_NVCC_EXECUTABLE})
  endif()
  enable_language(CUDA)
  if(DEFINED CMAKE_CUDA20_STANDARD_COMPILE_OPTION)
    set(CMAKE_CUDA_STANDARD 20)
    set(CMAKE_CUDA_STANDARD_REQUIRED ON)
    set(CMAKE_CUDA_EXTENSIONS OFF)
  else()  # CMake before 3.26 knows no C++20 flag for nvcc
    string(APPEND CMAKE_CUDA_FLAGS " -std=c++20")
  endif()
  set(CMAKE_CUDA_RUNTIME_LIBRARY Shared)
endmacro()
