// MakeTar: builds an uncompressed POSIX ustar archive in memory. It is the
// format of a VM's config disk (docs/VMM.md): the guest reads it straight
// off the block device with `tar -xf /dev/vdb`, so the host needs no mkfs,
// no mount and no root. Pure; thread-safe.
#pragma once

#include <string>
#include <vector>

#include "control/result.h"

namespace vmm {

struct TarFile {
  std::string path;  // relative, at most 100 bytes
  std::string data;
  int mode = 0644;
};

// Padded to whole 10 KiB records, as tar(1) writes. Errors on a path that
// is absolute, has "..", or is too long for ustar.
control::Result<std::string> MakeTar(const std::vector<TarFile>& files);

}  // namespace vmm
