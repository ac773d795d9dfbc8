# SPDX-License-Identifier: MIT
# The stream transport's parsers (control messages, proofs, the receiver's incremental image
# checker): corpus replayed as a test; libFuzzer binary fuzz-stream-wire with UFFSNAP_FUZZ.
add_executable(fuzz-stream-wire-replay fuzz-stream-wire.c fuzz-replay.c)
target_link_libraries(fuzz-stream-wire-replay PRIVATE uffsnap-stream)
add_test(NAME fuzz-stream-wire-corpus
	COMMAND fuzz-stream-wire-replay ${CMAKE_CURRENT_SOURCE_DIR}/corpus/stream
		${CMAKE_CURRENT_SOURCE_DIR}/corpus/img)
set_tests_properties(fuzz-stream-wire-corpus PROPERTIES LABELS fuzz TIMEOUT 300)

# Writes the seed corpus (corpus/stream/ is its committed output).
add_executable(fuzz-stream-gen fuzz-stream-gen.c)
target_link_libraries(fuzz-stream-gen PRIVATE uffsnap-stream)

if(UFFSNAP_FUZZ)
	# Included before CMakeLists.txt sets its flags: the same flags, spelled here.
	separate_arguments(_fuzz_stream_extra UNIX_COMMAND "${UFFSNAP_FUZZ_EXTRA_FLAGS}")
	set(_fuzz_stream_flags -fsanitize=address,undefined -fno-sanitize-recover=undefined
		-fno-omit-frame-pointer ${_fuzz_stream_extra})
	set(_fuzz_stream_src wire.c auth.c check.c)
	list(TRANSFORM _fuzz_stream_src PREPEND "${PROJECT_SOURCE_DIR}/daemon/stream/")
	add_executable(fuzz-stream-wire fuzz-stream-wire.c ${_fuzz_stream_src})
	target_include_directories(fuzz-stream-wire PRIVATE ${PROJECT_SOURCE_DIR}/daemon)
	target_compile_options(fuzz-stream-wire PRIVATE -fsanitize=fuzzer ${_fuzz_stream_flags})
	target_link_options(fuzz-stream-wire PRIVATE -fsanitize=fuzzer ${_fuzz_stream_flags})
	target_link_libraries(fuzz-stream-wire PRIVATE uffsnap-fuzz PkgConfig::LIBCRYPTO)
	add_test(NAME fuzz-stream-wire-libfuzzer
		COMMAND fuzz-stream-wire -runs=0 ${CMAKE_CURRENT_SOURCE_DIR}/corpus/stream)
	set_tests_properties(fuzz-stream-wire-libfuzzer PROPERTIES LABELS fuzz TIMEOUT 300)
endif()
