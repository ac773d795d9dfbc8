# SPDX-License-Identifier: MIT
# Streaming to a receiver (sender sink, receiver, authentication): library uffsnap-stream.
add_library(uffsnap-stream STATIC stream-recv-main.c)
target_include_directories(uffsnap-stream PUBLIC ${CMAKE_CURRENT_SOURCE_DIR})
target_link_libraries(uffsnap-stream PUBLIC uffsnap-engine)
