# SPDX-License-Identifier: MIT
# Service mode (control socket, jobs): library uffsnap-service.
add_library(uffsnap-service STATIC svc-main.c)
target_include_directories(uffsnap-service PUBLIC ${CMAKE_CURRENT_SOURCE_DIR})
target_link_libraries(uffsnap-service PUBLIC uffsnap-engine)
