# SPDX-License-Identifier: MIT
# Warnings every target gets; each flag is probed so gcc and clang both work.
include(CheckCCompilerFlag)
function(mw_add_c_flags)
  foreach(flag ${ARGN})
    string(MAKE_C_IDENTIFIER "HAVE${flag}" var)
    check_c_compiler_flag(${flag} ${var})
    if(${var})
      add_compile_options(${flag})
    endif()
  endforeach()
endfunction()
mw_add_c_flags(-Wall -Wextra -Wshadow -Wundef -Wcast-qual -Wstrict-prototypes
  -Wmissing-prototypes -Wpointer-arith -Wvla -Wformat=2 -Wwrite-strings
  -Wimplicit-fallthrough -Wno-unused-parameter)
option(MW_WERROR "warnings are errors (ON in CI)" OFF)
if(MW_WERROR)
  add_compile_options(-Werror)
endif()
