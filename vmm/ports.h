// Picks loopback TCP ports for VMs' forwards (ssh, web). The database is
// the record of which ports belong to which VM; the caller passes those in
// `taken`, because a stopped VM keeps its ports but nothing listens on them.
//
// A port is "free" when bind() on it succeeds at the moment of the call.
// Nothing holds it afterwards: the caller records it and passt binds it when
// the VM starts. If something else took it in between, passt fails to
// start, and the caller may pick again.
//
// Why a range can be given: a port the kernel picks (bind to port 0) comes
// from the ephemeral range (net.ipv4.ip_local_port_range), the same range
// outgoing connections draw their local ports from, so a stopped VM's port
// can be in use by a client socket when the VM starts again. A configured
// range below the ephemeral one avoids that.
//
// Stateless; thread-safe.
#pragma once

#include <set>
#include <string>

#include "control/result.h"

namespace vmm {

struct PortRange {
  int first = 0;  // 0: let the kernel choose (ephemeral range)
  int last = 0;
};

// A TCP port on `address` that binds now and is not in `taken`. With a
// range, the lowest such port in [first, last]; else one the kernel
// chooses. kDenied error when none is left; kInternal for OS errors.
control::Result<int> PickFreePort(const std::set<int>& taken, PortRange range = {},
                                  const std::string& address = "127.0.0.1");

}  // namespace vmm
