// cpp-httplib as esamp-server and its tests include it: after Eigen, because httplib.h includes
// <resolv.h>, whose _res macro breaks Eigen's headers when they come after it.
#pragma once

#include <Eigen/Core>
// httplib.h last (see above).
#include <httplib.h>
