# SPDX-License-Identifier: MIT
# Streaming to a receiver (proto/STREAM.md): the wire codec, authentication, the receiver and
# the sender sink, as library uffsnap-stream (linked into uffsnapd and the stream tests).
add_library(uffsnap-stream STATIC
	stream-wire.c
	stream-auth.c
	stream-addr.c
	stream-check.c
	stream-recv.c
	stream-recv-sess.c
	stream-recv-main.c
	stream-sink.c
	stream-send.c)
target_include_directories(uffsnap-stream PUBLIC ${CMAKE_CURRENT_SOURCE_DIR})
target_link_libraries(uffsnap-stream PUBLIC uffsnap-engine PkgConfig::LIBURING PkgConfig::LIBCRYPTO
		      Threads::Threads)
