# SPDX-License-Identifier: MIT
# The ELF core writer's reading of image metadata: corpus replayed as a test; libFuzzer binary
# fuzz-core-meta with UFFSNAP_FUZZ (corpus/core-meta, the name ./dev fuzz looks for).
add_executable(fuzz-core-meta-replay fuzz-core-meta.c fuzz-replay.c)
target_link_libraries(fuzz-core-meta-replay PRIVATE uffsnap)
add_test(NAME fuzz-core-meta-corpus
	COMMAND fuzz-core-meta-replay ${CMAKE_CURRENT_SOURCE_DIR}/corpus/core-meta)
set_tests_properties(fuzz-core-meta-corpus PROPERTIES LABELS fuzz TIMEOUT 300)

if(UFFSNAP_FUZZ)
	separate_arguments(_fuzz_core_extra UNIX_COMMAND "${UFFSNAP_FUZZ_EXTRA_FLAGS}")
	set(_fuzz_core_flags -fsanitize=address,undefined -fno-sanitize-recover=undefined
		-fno-omit-frame-pointer ${_fuzz_core_extra})
	add_executable(fuzz-core-meta fuzz-core-meta.c)
	target_compile_options(fuzz-core-meta PRIVATE -fsanitize=fuzzer ${_fuzz_core_flags})
	target_link_options(fuzz-core-meta PRIVATE -fsanitize=fuzzer ${_fuzz_core_flags})
	target_link_libraries(fuzz-core-meta PRIVATE uffsnap-fuzz PkgConfig::LIBCRYPTO)
	add_test(NAME fuzz-core-meta-libfuzzer
		COMMAND fuzz-core-meta -runs=0 ${CMAKE_CURRENT_SOURCE_DIR}/corpus/core-meta)
	set_tests_properties(fuzz-core-meta-libfuzzer PROPERTIES LABELS fuzz TIMEOUT 300)
endif()
