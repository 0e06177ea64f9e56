// Resources and the budget rule: parsing and printing sizes, and deciding
// whether a new or resized VM fits an account's budget.
//
// The rule: an account's budget is a cgroup limit shared by all its VMs, so
// one VM's cpus and memory may each be as large as the whole budget and their
// sum over VMs may exceed it (overcommit, settled by the cgroup at run time).
// Disk is real space, so the provisioned sizes must sum within the budget,
// and the number of VMs must fit the VM limit.
//
// Value types and pure functions; safe to use from any thread.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "control/result.h"

namespace control {

struct Resources {
  int64_t cpus = 0;
  int64_t memory_mib = 0;
  int64_t disk_gib = 0;
  int64_t vms = 0;
};

// Memory sizes: "512M", "512MiB", "4G", "4GiB", "4GB", "1.5G", "1T", or a bare
// number of MiB; units are binary whatever their spelling (GB means GiB) and
// case-insensitive, and a space may separate number and unit. The result must
// be a whole number of MiB from 64 MiB to 16 TiB. Fails with kInvalid.
Result<int64_t> ParseMemoryMiB(std::string_view text);

// Disk sizes: "10G", "10GiB", "1T" (1024 GiB), "1.5T", or a bare number of GiB;
// the result must be a whole number of GiB from 1 GiB to 64 TiB. Fails with
// kInvalid.
Result<int64_t> ParseDiskGiB(std::string_view text);

// A CPU count: a whole number from 1 to 1024. Fails with kInvalid.
Result<int64_t> ParseCpus(std::string_view text);

// A whole number from min to max; `what` names it in the error ("VM count").
// Fails with kInvalid.
Result<int64_t> ParseCount(std::string_view text, int64_t min, int64_t max,
                           std::string_view what);

// "512 MiB", "4 GiB", "1.5 GiB", "2 TiB": the largest unit that shows the
// value exactly with at most two decimals. ParseMemoryMiB reads it back.
std::string FormatMiB(int64_t mib);

// "10 GiB", "1 TiB", "1.5 TiB", likewise exact. ParseDiskGiB reads it back.
std::string FormatGiB(int64_t gib);

// Returns nullopt if a new VM of size `vm` fits an account with `budget`
// whose existing VMs use `usage`, else the sentence that says which limit it
// breaks and by how much. vm.vms is ignored: the new VM counts as one.
// Sizes come from the Parse functions, so they are not negative.
std::optional<std::string> CheckNewVm(const Resources& budget, const Resources& usage,
                                      const Resources& vm);

// The same rule for changing one VM from `before` to `after`, where `usage`
// includes `before`. A disk may only grow. A cpus or memory value that does
// not increase is never refused, so a VM made before a budget was lowered can
// still be changed in other ways.
std::optional<std::string> CheckResize(const Resources& budget, const Resources& usage,
                                       const Resources& before, const Resources& after);

}  // namespace control
