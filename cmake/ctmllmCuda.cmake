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
# Attention in bfloat16/float16 runs on cuDNN's fused flash SDPA (ops/cuda/sdpa_cudnn.cuh) when the
# header-only cudnn-frontend is found, an optional dependency: CTMLLM_CUDNN_FRONTEND_INCLUDE_DIR (the
# folder holding cudnn_frontend.h) when set, else third_party/cudnn_frontend/include of a source tree
# (scripts/setup.sh and benchmarks/gpu/run_h200.sh fill it from pip's nvidia-cudnn-frontend wheel),
# else the include/ folder that `pip install nvidia-cudnn-frontend` puts beside python3's packages.
# Found, ctmllm::cuda gets it and CTMLLM_HAS_CUDNN_FRONTEND; otherwise attention runs the own kernels.
#
# In:  CTMLLM_ENABLE_CUDA (ON/OFF), CTMLLM_WITH_CUDNN_FRONTEND (ON/OFF, default ON).
# Out: CTMLLM_HAVE_CUDA, and ctmllm::cuda when it is ON.
set(CTMLLM_HAVE_CUDA OFF)
if(NOT DEFINED CTMLLM_WITH_CUDNN_FRONTEND)
  set(CTMLLM_WITH_CUDNN_FRONTEND ON)
endif()

# Sets the cache variable CTMLLM_CUDNN_FRONTEND_INCLUDE_DIR (unless already set) and, when the
# headers are found, CTMLLM_CUDNN_FRONTEND_VERSION in the caller's scope (1.14 is the first with the
# graph API calls sdpa_cudnn.cuh makes).
function(ctmllm_find_cudnn_frontend)
  set(hints ${CMAKE_CURRENT_FUNCTION_LIST_DIR}/../third_party/cudnn_frontend/include)
  find_program(CTMLLM_PYTHON3 python3)
  if(CTMLLM_PYTHON3 AND NOT CTMLLM_CUDNN_FRONTEND_INCLUDE_DIR)
    execute_process(
      COMMAND ${CTMLLM_PYTHON3} -c
        "import site, sysconfig; p = sysconfig.get_paths(); print(';'.join([p['platlib'], p['purelib'], site.getusersitepackages()]))"
      OUTPUT_VARIABLE site_dirs OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET RESULT_VARIABLE rc)
    if(rc EQUAL 0)
      foreach(d IN LISTS site_dirs)
        list(APPEND hints ${d}/include)
      endforeach()
    endif()
  endif()
  find_path(CTMLLM_CUDNN_FRONTEND_INCLUDE_DIR cudnn_frontend.h HINTS ${hints}
    DOC "Folder holding cudnn_frontend.h (pip's nvidia-cudnn-frontend): cuDNN's fused attention")
  if(CTMLLM_CUDNN_FRONTEND_INCLUDE_DIR AND EXISTS ${CTMLLM_CUDNN_FRONTEND_INCLUDE_DIR}/cudnn_frontend_version.h)
    file(STRINGS ${CTMLLM_CUDNN_FRONTEND_INCLUDE_DIR}/cudnn_frontend_version.h lines
      REGEX "#define CUDNN_FRONTEND_(MAJOR|MINOR|PATCH)_VERSION")
    set(version "")
    foreach(line IN LISTS lines)
      string(REGEX REPLACE ".*_VERSION +([0-9]+).*" "\\1" part "${line}")
      list(APPEND version ${part})
    endforeach()
    list(JOIN version "." version)
    set(CTMLLM_CUDNN_FRONTEND_VERSION ${version} PARENT_SCOPE)
  endif()
endfunction()

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
      if(CTMLLM_WITH_CUDNN_FRONTEND)
        ctmllm_find_cudnn_frontend()
      endif()
      if(CTMLLM_WITH_CUDNN_FRONTEND AND "${CTMLLM_CUDNN_FRONTEND_VERSION}" VERSION_GREATER_EQUAL 1.14 AND TARGET CUDA::nvrtc)
        # An IMPORTED target's include folders are system ones: the frontend's own warnings stay quiet.
        # NVRTC: the frontend's plan building links its runtime-compiled engines in.
        target_include_directories(ctmllm::cuda INTERFACE ${CTMLLM_CUDNN_FRONTEND_INCLUDE_DIR})
        target_compile_definitions(ctmllm::cuda INTERFACE CTMLLM_HAS_CUDNN_FRONTEND=1)
        target_link_libraries(ctmllm::cuda INTERFACE CUDA::nvrtc)
        if(NOT CTMLLM_CUDA_QUIET)
          message(STATUS "ctmllm: cudnn-frontend ${CTMLLM_CUDNN_FRONTEND_VERSION} at ${CTMLLM_CUDNN_FRONTEND_INCLUDE_DIR}: bf16/f16 attention through cuDNN's fused SDPA")
        endif()
      elseif(NOT CTMLLM_CUDA_QUIET AND NOT CTMLLM_WITH_CUDNN_FRONTEND)
        message(STATUS "ctmllm: cudnn-frontend not searched (CTMLLM_WITH_CUDNN_FRONTEND=OFF): attention on the own CUDA kernels")
      elseif(NOT CTMLLM_CUDA_QUIET)
        message(STATUS "ctmllm: no cudnn-frontend >= 1.14 headers (CTMLLM_CUDNN_FRONTEND_INCLUDE_DIR, third_party/cudnn_frontend/include, pip's nvidia-cudnn-frontend; found: '${CTMLLM_CUDNN_FRONTEND_VERSION}') or no NVRTC: attention on the own CUDA kernels")
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
