# Runs one compile-fail case: compiles SOURCE with -DCASE=<n> and checks the outcome the
# case's header line declares.
#
#   // case <n> <name>: compiles          the conforming type: must compile cleanly
#   // case <n> <name>: <text>            must fail, and the diagnostic must contain <text>
#   // case <n> <name>: <a> && <b>        ... and contain every one of <a>, <b>
#   // case <n> <name>: <a> && !<b>       ... and contain <a> but not <b>
#
# Expected texts are chosen to appear in both GCC's and Clang's diagnostics (the name of
# the sub-concept that is not satisfied, the sentence of a static_assert).
#
# A file may bound the diagnostic of its failing cases with a line
#   // bound: <e> errors, <l> lines
# and then the first error must carry the case's first expected text, the diagnostic may
# hold at most <e> errors (lines with "error:") and <l> lines: no cascade of follow-on errors.
#
# A case file also guards against a case breaking more than its one requirement: it
# asserts every requirement it does not target, with a message containing
# "NPA_CF_COLLATERAL"; that text in the output fails the case.
#
# Inputs: -DCOMPILER=<c++> -DSOURCE=<file> -DCASE=<n> -DINCLUDE_DIR=<npa include dir>
#         [-DEXTRA_INCLUDE_DIR=<another include dir, e.g. an adapter's>]
foreach(v COMPILER SOURCE CASE INCLUDE_DIR)
  if(NOT DEFINED ${v})
    message(FATAL_ERROR "check_case.cmake: -D${v}=... is required")
  endif()
endforeach()

file(STRINGS "${SOURCE}" decl REGEX "^// case ${CASE} [a-z0-9_]+: ")
list(LENGTH decl ndecl)
if(NOT ndecl EQUAL 1)
  message(FATAL_ERROR "${SOURCE}: expected one '// case ${CASE} <name>: <expectation>' line, "
                      "found ${ndecl}")
endif()
string(REGEX REPLACE "^// case ${CASE} [a-z0-9_]+: " "" expect "${decl}")

set(extra_include "")
if(DEFINED EXTRA_INCLUDE_DIR AND NOT EXTRA_INCLUDE_DIR STREQUAL "")
  set(extra_include "-I${EXTRA_INCLUDE_DIR}")
endif()

# LC_ALL=C keeps the compiler's quotes plain ASCII; no colour codes in the output.
execute_process(
  COMMAND ${CMAKE_COMMAND} -E env LC_ALL=C
          ${COMPILER} -std=c++20 -fsyntax-only -fdiagnostics-color=never
          -I${INCLUDE_DIR} ${extra_include} -DCASE=${CASE} ${SOURCE}
  RESULT_VARIABLE rc
  OUTPUT_VARIABLE out
  ERROR_VARIABLE err)
set(diag "${out}${err}")

if(expect STREQUAL "compiles")
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "case ${CASE} (the conforming type) must compile, but did not:\n${diag}")
  endif()
  message(STATUS "case ${CASE}: compiles, as it must")
  return()
endif()

if(rc EQUAL 0)
  message(FATAL_ERROR "case ${CASE} compiled, but it breaks a requirement and must not: "
                      "the concept or static_assert does not check it")
endif()
string(FIND "${diag}" "NPA_CF_COLLATERAL" collateral)
if(NOT collateral EQUAL -1)
  message(FATAL_ERROR "case ${CASE} breaks more than the one requirement it targets:\n${diag}")
endif()
string(REPLACE " && " ";" expect_all "${expect}")
foreach(text IN LISTS expect_all)
  if(text MATCHES "^!")
    string(SUBSTRING "${text}" 1 -1 forbidden)
    string(FIND "${diag}" "${forbidden}" at)
    if(NOT at EQUAL -1)
      message(FATAL_ERROR "case ${CASE}: the diagnostic contains text it must not "
                          "(a misleading extra message)\n  \"${forbidden}\"\n"
                          "--- diagnostic ---\n${diag}")
    endif()
    continue()
  endif()
  string(FIND "${diag}" "${text}" at)
  if(at EQUAL -1)
    message(FATAL_ERROR "case ${CASE} failed to compile, but the diagnostic does not contain "
                        "the expected text\n  \"${text}\"\n--- diagnostic ---\n${diag}")
  endif()
endforeach()

file(STRINGS "${SOURCE}" bound REGEX "^// bound: [0-9]+ errors, [0-9]+ lines$")
if(bound)
  string(REGEX MATCH "^// bound: ([0-9]+) errors, ([0-9]+) lines$" _ "${bound}")
  set(max_errors ${CMAKE_MATCH_1})
  set(max_lines ${CMAKE_MATCH_2})
  # Semicolons would split the lists below: count and compare a copy without them.
  string(REPLACE ";" "," plain "${diag}")
  string(REGEX MATCHALL "[^\n]*error:[^\n]*" errors "${plain}")
  list(LENGTH errors nerrors)
  string(REGEX MATCHALL "\n" newlines "${plain}")
  list(LENGTH newlines nlines)
  list(GET expect_all 0 first_text)
  string(REPLACE ";" "," first_text "${first_text}")
  list(GET errors 0 first_error)
  string(FIND "${first_error}" "${first_text}" at)
  if(at EQUAL -1)
    message(FATAL_ERROR "case ${CASE}: the first error is not the expected one\n"
                        "  expected: \"${first_text}\"\n  first error: ${first_error}\n"
                        "--- diagnostic ---\n${diag}")
  endif()
  if(nerrors GREATER max_errors OR nlines GREATER max_lines)
    message(FATAL_ERROR "case ${CASE}: the diagnostic is too long: ${nerrors} errors in "
                        "${nlines} lines (at most ${max_errors} errors, ${max_lines} lines)\n"
                        "--- diagnostic ---\n${diag}")
  endif()
  message(STATUS "case ${CASE}: ${nerrors} error(s) in ${nlines} lines, the first the expected one")
endif()
message(STATUS "case ${CASE}: fails to compile with \"${expect}\", as it must")
