# SPDX-License-Identifier: MIT
# Service mode (control socket, jobs): library uffsnap-service. ctl-request.c and ctl-line.c
# are the pure protocol parts the fuzzer drives (tests/fuzz/ctl.cmake).
set(UFFSNAP_SERVICE_SOURCES
	ctl-request.c
	ctl-line.c
	ctl-commands.c
	svc-auth.c
	svc-client.c
	svc-job.c
	svc-receive.c
	svc-output.c
	svc-setup.c
	svc-main.c)
add_library(uffsnap-service STATIC ${UFFSNAP_SERVICE_SOURCES})
target_include_directories(uffsnap-service PUBLIC ${CMAKE_CURRENT_SOURCE_DIR})
target_link_libraries(uffsnap-service PUBLIC uffsnap-engine uffsnap-stream)
if(TARGET uffsnap-sys)
	target_link_libraries(uffsnap-service PUBLIC uffsnap-sys)
endif()
