// The VM host's view of a VM row: what Host needs to run it. One place, so
// the control plane and the reconciler describe a VM alike.
#pragma once

#include "db/vms.h"
#include "vmm/host.h"

namespace vmm {

VmDef FromRow(const db::Vm& vm);

}  // namespace vmm
