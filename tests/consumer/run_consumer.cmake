# Builds and runs one of the consumer projects in tests/consumer. Run by ctest as
#   cmake -DCONSUMER_MODE=find_package|add_subdirectory -DCONSUMER_WORK_DIR=... \
#         -DFALTUNG_SOURCE_DIR=... -DFALTUNG_BINARY_DIR=... [-DCONSUMER_GENERATOR=...] \
#         [-DCONSUMER_MAKE_PROGRAM=...] [-DCONSUMER_CXX_COMPILER=...] [-DCONSUMER_EIGEN3_DIR=...] \
#         [-DCONSUMER_PREFIX_PATH=a|b] [-DCONSUMER_WITH_IMAGE=ON] -P run_consumer.cmake
#
# CONSUMER_WITH_IMAGE (faltung found stb): the consumer also uses faltung::image.
#
# find_package:     installs faltung's build tree into ${CONSUMER_WORK_DIR}/prefix (emptied first),
#                   then configures tests/consumer/find_package with CMAKE_PREFIX_PATH pointing there.
# add_subdirectory: configures tests/consumer/add_subdirectory, which adds ${FALTUNG_SOURCE_DIR}.
# Both then build the consumer (Release, one job) and run it; any failure fails the test.
cmake_minimum_required(VERSION 3.16)

foreach(var CONSUMER_MODE CONSUMER_WORK_DIR FALTUNG_SOURCE_DIR FALTUNG_BINARY_DIR)
  if(NOT ${var})
    message(FATAL_ERROR "run_consumer.cmake: ${var} is not set")
  endif()
endforeach()
if(NOT CONSUMER_MODE MATCHES "^(find_package|add_subdirectory)$")
  message(FATAL_ERROR "run_consumer.cmake: unknown CONSUMER_MODE '${CONSUMER_MODE}'")
endif()

function(run step)
  message(STATUS "[${CONSUMER_MODE}] ${step}: ${ARGN}")
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "[${CONSUMER_MODE}] ${step} failed (${rc})")
  endif()
endfunction()

# Start from nothing: a stale prefix could hide a header that is no longer installed.
file(REMOVE_RECURSE ${CONSUMER_WORK_DIR})
file(MAKE_DIRECTORY ${CONSUMER_WORK_DIR})

string(REPLACE "|" ";" prefix_path "${CONSUMER_PREFIX_PATH}")
set(configure_args -DCMAKE_BUILD_TYPE=Release)
if(CONSUMER_GENERATOR)
  list(APPEND configure_args -G ${CONSUMER_GENERATOR})
endif()
if(CONSUMER_MAKE_PROGRAM)
  list(APPEND configure_args -DCMAKE_MAKE_PROGRAM=${CONSUMER_MAKE_PROGRAM})
endif()
if(CONSUMER_CXX_COMPILER)
  list(APPEND configure_args -DCMAKE_CXX_COMPILER=${CONSUMER_CXX_COMPILER})
endif()
if(CONSUMER_EIGEN3_DIR)
  list(APPEND configure_args -DEigen3_DIR=${CONSUMER_EIGEN3_DIR})
endif()
if(CONSUMER_WITH_IMAGE)
  list(APPEND configure_args -DCONSUMER_WITH_IMAGE=ON)
endif()

if(CONSUMER_MODE STREQUAL "find_package")
  set(prefix ${CONSUMER_WORK_DIR}/prefix)
  run(install ${CMAKE_COMMAND} --install ${FALTUNG_BINARY_DIR} --prefix ${prefix} --config Release)
  # What the package must contain (datadir/cmake/faltung, as nlohmann/json does).
  foreach(file include/faltung/faltung.hpp include/faltung/tensor.hpp
               share/cmake/faltung/faltungConfig.cmake share/cmake/faltung/faltungConfigVersion.cmake
               share/cmake/faltung/faltungTargets.cmake)
    if(NOT EXISTS ${prefix}/${file})
      message(FATAL_ERROR "[find_package] the install is missing ${file}")
    endif()
  endforeach()
  # The config file must not change the consumer's global state.
  file(READ ${prefix}/share/cmake/faltung/faltungConfig.cmake config_text)
  string(REGEX REPLACE "#[^\n]*" "" config_code "${config_text}")
  foreach(forbidden add_definitions add_compile_options add_compile_definitions include_directories
                    link_libraries CMAKE_CXX_FLAGS)
    if(config_code MATCHES "(^|[^A-Za-z_])${forbidden}")
      message(FATAL_ERROR "[find_package] faltungConfig.cmake uses ${forbidden}")
    endif()
  endforeach()
  list(PREPEND prefix_path ${prefix})
  list(APPEND configure_args -DCONSUMER_EXPECTED_PREFIX=${prefix})
  set(source ${FALTUNG_SOURCE_DIR}/tests/consumer/find_package)
else()
  list(APPEND configure_args -DFALTUNG_SOURCE_DIR=${FALTUNG_SOURCE_DIR})
  set(source ${FALTUNG_SOURCE_DIR}/tests/consumer/add_subdirectory)
endif()
if(prefix_path)
  string(REPLACE ";" "\\;" prefix_path_arg "${prefix_path}")
  list(APPEND configure_args "-DCMAKE_PREFIX_PATH=${prefix_path_arg}")
endif()

set(build ${CONSUMER_WORK_DIR}/build)
set(exe "")
if(CMAKE_HOST_WIN32)
  set(exe .exe)
endif()
run(configure ${CMAKE_COMMAND} -S ${source} -B ${build} ${configure_args})
run(build ${CMAKE_COMMAND} --build ${build} --config Release --parallel 1)
if(EXISTS ${build}/Release/consumer${exe})
  set(program ${build}/Release/consumer${exe})  # multi-config generators
else()
  set(program ${build}/consumer${exe})
endif()
run(run ${program})
