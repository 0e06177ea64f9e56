// Where VM disks, sockets and images live. QEMU and passt run as an
// unprivileged user, so that user must be able to reach these files; a state
// directory inside root's home (ops/up's ./var in a checkout under /root) is
// out of its reach. Then the runtime files move to /var/lib/exed/runtime-HASH
// (HASH of the state directory's absolute path, so every exed command of one
// installation agrees on it), and STATE_DIR/runtime points there.
#pragma once

#include <string>

namespace vmm {

// REQUIRES: state_dir exists. Not thread-safe with itself (it may create
// directories); call once at start-up.
std::string ResolveRuntimeDir(const std::string& state_dir, const std::string& run_as_user);

}  // namespace vmm
