// Implementation pending (see placement.h for the contract).
#include "hyperaccel/placement/placement.h"
