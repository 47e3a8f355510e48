// The Kubernetes REST client kubectl-hyperaccel uses. The only place the plugin names the client's
// header, so moving the client to another library changes this one line.
#pragma once

#include "hyperaccel/kube/client.h"  // IWYU pragma: export
