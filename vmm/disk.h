// VM disks: qcow2 overlays on an image's read-only raw root (creation is a
// few milliseconds whatever the size), grown in place, cloned by copying the
// overlay (which holds only the VM's own changes; the base stays shared).
// Runs qemu-img as a child; blocking; thread-safe for different files.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "control/result.h"

namespace vmm {

// Runs argv[0] (searched in PATH) and returns its stdout; an error carries its stderr.
control::Result<std::string> RunCommand(const std::vector<std::string>& argv);

struct DiskInfo {
  uint64_t virtual_bytes = 0;
  uint64_t allocated_bytes = 0;  // what the overlay takes on the host
};

control::Status CreateOverlay(const std::string& base_raw, const std::string& path, int64_t size_gib);
// Grows the virtual size (never shrinks).
control::Status GrowDisk(const std::string& path, int64_t size_gib);
control::Result<DiskInfo> InspectDisk(const std::string& path);
// REQUIRES: no process writes `src` meanwhile (the VM is stopped or paused).
control::Status CopyDisk(const std::string& src, const std::string& dst);

}  // namespace vmm
