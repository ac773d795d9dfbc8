# SPDX-License-Identifier: MIT
# Service mode's system parts: sd_notify and socket activation (svc-notify), least privilege
# (svc-caps, libcap), the process events connector (proc-events, libnl): library uffsnap-sys.
add_library(uffsnap-sys STATIC svc-notify.c svc-caps.c proc-events.c)
target_include_directories(uffsnap-sys PUBLIC ${CMAKE_CURRENT_SOURCE_DIR})
target_link_libraries(uffsnap-sys PUBLIC PkgConfig::LIBCAP PkgConfig::LIBNL)
