# Module helpers that every CMakeLists.txt in the tree uses.
#
# keyline_library(NAME
#     SOURCES a.cc b.cc            # implementation files
#     [PUBLIC_DEPS  targets...]    # deps whose headers appear in this module's public headers
#     [PRIVATE_DEPS targets...])   # deps used only inside src/
#   Public headers live in <module>/include/keyline/<module>/; the target is keyline::NAME.
#
# keyline_executable(NAME SOURCES ... [DEPS targets...])
#   A thin main; the binary lands in <build>/bin/NAME.
#
# keyline_test(NAME SOURCES ... [DEPS targets...] [LABELS unit|integration|chaos|pkcs11 ...]
#              [TIMEOUT seconds] [ENVIRONMENT VAR=value ...])
#   One Boost.Test executable registered with CTest under NAME with the given labels.

function(keyline_apply_warnings target)
  target_compile_options(${target} PRIVATE ${KEYLINE_WARNING_FLAGS})
endfunction()

function(keyline_library name)
  cmake_parse_arguments(ARG "" "" "SOURCES;PUBLIC_DEPS;PRIVATE_DEPS" ${ARGN})
  add_library(${name} STATIC ${ARG_SOURCES})
  add_library(keyline::${name} ALIAS ${name})
  if(EXISTS ${CMAKE_CURRENT_SOURCE_DIR}/include)
    target_include_directories(${name} PUBLIC ${CMAKE_CURRENT_SOURCE_DIR}/include)
  endif()
  target_include_directories(${name} PRIVATE ${CMAKE_CURRENT_SOURCE_DIR}/src)
  target_link_libraries(${name} PUBLIC ${ARG_PUBLIC_DEPS} PRIVATE ${ARG_PRIVATE_DEPS})
  keyline_apply_warnings(${name})
endfunction()

function(keyline_executable name)
  cmake_parse_arguments(ARG "" "" "SOURCES;DEPS" ${ARGN})
  add_executable(${name} ${ARG_SOURCES})
  target_link_libraries(${name} PRIVATE ${ARG_DEPS})
  keyline_apply_warnings(${name})
endfunction()

function(keyline_test name)
  # The fuzz build (KEYLINE_FUZZ) runs libFuzzer targets only: no Boost.Test executables.
  if(KEYLINE_FUZZ)
    return()
  endif()
  cmake_parse_arguments(ARG "" "TIMEOUT" "SOURCES;DEPS;LABELS;ENVIRONMENT" ${ARGN})
  add_executable(${name} ${ARG_SOURCES})
  target_link_libraries(${name} PRIVATE ${ARG_DEPS} keyline::test_support Boost::unit_test_framework)
  # Tests are not shipped: keep them out of <build>/bin, which holds the product's binaries.
  set_target_properties(${name} PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/test-bin)
  keyline_apply_warnings(${name})
  if(NOT ARG_LABELS)
    set(ARG_LABELS unit)
  endif()
  if(NOT ARG_TIMEOUT)
    set(ARG_TIMEOUT 300)
  endif()
  add_test(NAME ${name} COMMAND ${name} --log_level=message --report_level=short)
  set_tests_properties(${name} PROPERTIES LABELS "${ARG_LABELS}" TIMEOUT ${ARG_TIMEOUT}
      ENVIRONMENT "${ARG_ENVIRONMENT}")
endfunction()
