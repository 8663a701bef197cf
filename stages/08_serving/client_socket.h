// client_socket.h: has the client of a request gone away, and does its socket take bytes now?
//
// A streamed response notices a client that left when a write fails. A non-streamed one writes
// nothing until its completion is done, and cpp-httplib 0.11 (Debian's) gives a handler neither
// its socket nor an is_connection_closed(). The connection is still open while the handler runs,
// so its socket is the one of this process whose two ends are the request's addresses
// (Request::remote_addr/remote_port and local_port): found once, then peeked at while waiting.
#pragma once

#include <string>

namespace llm::stage08 {

/// The socket of this process connected from (remote_addr, remote_port) to local port
/// `local_port` (IPv4 or IPv6, numeric address as cpp-httplib reports it), or -1 when none is
/// (the client has already gone, or the addresses do not parse). Looks through /proc/self/fd.
int find_client_socket(const std::string& remote_addr, int remote_port, int local_port);

/// True when the peer of socket `fd` has closed or reset the connection (a read would return end
/// of stream or an error); false while it is open, also when it has sent more bytes (a next
/// request on a keep-alive connection), which are left unread. Never blocks.
bool peer_closed(int fd);

/// True when a write to socket `fd` would not block now (room in its send buffer), or when the
/// socket is in error or closed (a write then fails at once, which is how its writer learns);
/// false while the peer is not reading and the buffer is full. fd < 0 (socket unknown): true.
/// Never blocks.
bool writable_now(int fd);

}  // namespace llm::stage08
