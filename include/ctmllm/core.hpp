#pragma once
// The core layer: tensors, element types, devices, errors, RNG, CPU parallelism.
#include "ctmllm/core/device.hpp"
#include "ctmllm/core/dtype.hpp"
#include "ctmllm/core/error.hpp"
#include "ctmllm/core/parallel.hpp"
#include "ctmllm/core/rng.hpp"
#include "ctmllm/core/shape.hpp"
#include "ctmllm/core/strided.hpp"
#include "ctmllm/core/tensor.hpp"
