# Chooses the I/O poller backend: WEFT_POLLER=epoll (the only one so far; io_uring is
# meant to be one more file here). Sets WEFT_POLLER_SOURCES.
set(WEFT_POLLER "epoll" CACHE STRING "I/O poller backend: epoll")
set_property(CACHE WEFT_POLLER PROPERTY STRINGS epoll)
if(WEFT_POLLER STREQUAL "epoll")
  set(WEFT_POLLER_SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/src/io/poll_epoll.c)
else()
  message(FATAL_ERROR "weft: unknown WEFT_POLLER '${WEFT_POLLER}' (choose: epoll)")
endif()
message(STATUS "weft: poller = ${WEFT_POLLER}")
