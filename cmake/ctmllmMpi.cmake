# Optional MPI for data-parallel training on CPUs (train/mpi_communicator.hpp): target ctmllm::mpi
# (MPI's C API from C++; the deprecated C++ bindings are switched off) when find_package(MPI) succeeds. Used by
# the project's build and by installed consumers (through ctmllmConfig.cmake).
#
# In:  CTMLLM_WITH_MPI (ON/OFF). Out: CTMLLM_HAVE_MPI, and ctmllm::mpi when it is ON.
set(CTMLLM_HAVE_MPI OFF)
if(CTMLLM_WITH_MPI AND NOT TARGET ctmllm::mpi)
  find_package(MPI QUIET COMPONENTS CXX)
  if(MPI_CXX_FOUND)
    add_library(ctmllm::mpi INTERFACE IMPORTED GLOBAL)
    target_compile_definitions(ctmllm::mpi INTERFACE CTMLLM_WITH_MPI=1 OMPI_SKIP_MPICXX=1 MPICH_SKIP_MPICXX=1)
    target_link_libraries(ctmllm::mpi INTERFACE ctmllm::ctmllm MPI::MPI_CXX)
    message(STATUS "ctmllm: MPI ${MPI_CXX_VERSION} (${MPIEXEC_EXECUTABLE}): ctmllm::mpi available")
  else()
    message(STATUS "ctmllm: no MPI found: no ctmllm::mpi (data-parallel training over MPI is off)")
  endif()
endif()
if(TARGET ctmllm::mpi)
  set(CTMLLM_HAVE_MPI ON)
endif()
