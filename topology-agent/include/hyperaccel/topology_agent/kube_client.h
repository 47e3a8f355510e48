// Forwarding header: the Kubernetes REST client moved to the kube/ library (target
// hyperaccel::kube). New code includes "hyperaccel/kube/client.h" directly.
#pragma once

#include "hyperaccel/kube/client.h"  // IWYU pragma: export
