// The PKCS#11 header (p11-kit's), included as a system header. Only src/pkcs11 includes this.
#pragma once

#include <p11-kit/pkcs11.h>
