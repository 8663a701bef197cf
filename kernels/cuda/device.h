// device.h: finding out whether a CUDA device is there, and a checked-call helper.
#pragma once

#include <string>

namespace llm::cuda {

/// Number of usable CUDA devices; 0 when there is no driver or no GPU (never throws).
int device_count();
/// "NVIDIA H100 80GB HBM3 (sm_90, 79 GiB)" for device 0, or "" when there is none.
std::string device_name();

}  // namespace llm::cuda
