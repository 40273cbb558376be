# The optional CUDA backend: target ctmllm::cuda (cudart, cuBLAS, cuBLASLt, cuDNN; sm_90) when the
# toolkit and cuDNN are present. Everything else builds and tests without it. Used both by the
# project's own build and by installed consumers (through ctmllmConfig.cmake), so it only finds
# libraries and defines an INTERFACE IMPORTED target: no language is enabled here, nothing compiles,
# and a machine with the toolkit but no GPU (or no driver) configures and links the same way.
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
      target_compile_definitions(ctmllm::cuda INTERFACE CTMLLM_WITH_CUDA=1)
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
