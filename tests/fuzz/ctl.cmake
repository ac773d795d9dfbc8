# SPDX-License-Identifier: MIT
# Fuzzing the control protocol's input (proto/ctl-line.c, proto/ctl-request.c) with the
# daemon's real command table. Replay of corpus/ctl/ in every build; the libFuzzer binary
# fuzz-ctl-request with -DUFFSNAP_FUZZ=ON. Included from CMakeLists.txt.
add_executable(fuzz-ctl-request-replay fuzz-ctl-request.c fuzz-replay.c)
target_link_libraries(fuzz-ctl-request-replay PRIVATE uffsnap-service)
add_test(NAME fuzz-ctl-request-corpus
	COMMAND fuzz-ctl-request-replay ${CMAKE_CURRENT_SOURCE_DIR}/corpus/ctl)
set_tests_properties(fuzz-ctl-request-corpus PROPERTIES LABELS fuzz TIMEOUT 300)

if(UFFSNAP_FUZZ)
	# The pure parts compiled again with coverage; the rest (the command table's handlers,
	# never called here) comes from uffsnap-service as usual.
	separate_arguments(_ctl_extra UNIX_COMMAND "${UFFSNAP_FUZZ_EXTRA_FLAGS}")
	set(_ctl_fuzz_flags -fsanitize=address,undefined -fno-sanitize-recover=undefined
		-fno-omit-frame-pointer ${_ctl_extra})
	add_executable(fuzz-ctl-request fuzz-ctl-request.c
		${PROJECT_SOURCE_DIR}/proto/ctl-request.c ${PROJECT_SOURCE_DIR}/proto/ctl-line.c)
	target_compile_options(fuzz-ctl-request PRIVATE -fsanitize=fuzzer ${_ctl_fuzz_flags})
	target_link_options(fuzz-ctl-request PRIVATE -fsanitize=fuzzer ${_ctl_fuzz_flags})
	target_link_libraries(fuzz-ctl-request PRIVATE uffsnap-service)
	add_test(NAME fuzz-ctl-request-libfuzzer
		COMMAND fuzz-ctl-request -runs=0 ${CMAKE_CURRENT_SOURCE_DIR}/corpus/ctl)
	set_tests_properties(fuzz-ctl-request-libfuzzer PROPERTIES LABELS fuzz TIMEOUT 300)
endif()
