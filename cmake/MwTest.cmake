# SPDX-License-Identifier: MIT
# mw_add_test(NAME COMMAND cmd... LABELS l... [TIMEOUT s])
# Exit code 77 means "skipped" (liburing, automake convention).
function(mw_add_test name)
  cmake_parse_arguments(T "" "TIMEOUT" "COMMAND;LABELS" ${ARGN})
  if(NOT T_TIMEOUT)
    set(T_TIMEOUT 60)
  endif()
  add_test(NAME ${name} COMMAND ${T_COMMAND})
  set_tests_properties(${name} PROPERTIES SKIP_RETURN_CODE 77
    TIMEOUT ${T_TIMEOUT} LABELS "${T_LABELS}")
endfunction()
