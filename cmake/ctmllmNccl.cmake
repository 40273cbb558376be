# Optional NCCL for data-parallel training on GPUs (train/nccl_communicator.hpp): target ctmllm::nccl
# (ctmllm::cuda + NCCL) when ctmllm::cuda exists and nccl.h and libnccl are found: in CTMLLM_NCCL_ROOT
# or $NCCL_ROOT, the system paths, or the PyPI wheel nvidia-nccl-cu* of the python3 on PATH (what
# PyTorch installs). Used by the project's build and by installed consumers.
#
# In:  CTMLLM_WITH_NCCL (ON/OFF), ctmllm::cuda. Out: CTMLLM_HAVE_NCCL, and ctmllm::nccl when it is ON.
set(CTMLLM_HAVE_NCCL OFF)
if(CTMLLM_WITH_NCCL AND TARGET ctmllm::cuda AND NOT TARGET ctmllm::nccl)
  set(_ctmllm_nccl_hints ${CTMLLM_NCCL_ROOT} $ENV{NCCL_ROOT})
  find_program(_ctmllm_python3 python3)
  if(_ctmllm_python3)
    execute_process(COMMAND ${_ctmllm_python3} -c "import nvidia.nccl as n; print(list(n.__path__)[0])"
                    OUTPUT_VARIABLE _ctmllm_nccl_wheel OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET)
    list(APPEND _ctmllm_nccl_hints ${_ctmllm_nccl_wheel})
  endif()
  find_path(CTMLLM_NCCL_INCLUDE_DIR nccl.h HINTS ${_ctmllm_nccl_hints} PATH_SUFFIXES include)
  find_library(CTMLLM_NCCL_LIBRARY NAMES nccl libnccl.so.2 HINTS ${_ctmllm_nccl_hints} PATH_SUFFIXES lib lib64)
  if(CTMLLM_NCCL_INCLUDE_DIR AND CTMLLM_NCCL_LIBRARY)
    add_library(ctmllm::nccl INTERFACE IMPORTED GLOBAL)
    target_compile_definitions(ctmllm::nccl INTERFACE CTMLLM_WITH_NCCL=1)
    target_include_directories(ctmllm::nccl INTERFACE ${CTMLLM_NCCL_INCLUDE_DIR})
    target_link_libraries(ctmllm::nccl INTERFACE ctmllm::cuda ${CTMLLM_NCCL_LIBRARY})
    message(STATUS "ctmllm: NCCL ${CTMLLM_NCCL_LIBRARY}: ctmllm::nccl available")
  else()
    message(STATUS "ctmllm: no NCCL found (set CTMLLM_NCCL_ROOT): no ctmllm::nccl")
  endif()
endif()
if(TARGET ctmllm::nccl)
  set(CTMLLM_HAVE_NCCL ON)
endif()
