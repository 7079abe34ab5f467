#include "CDemangle.h"

// From the C++ ABI (libstdc++ / libc++abi): declared here so this stays a C target.
extern char *__cxa_demangle(const char *mangled_name, char *output_buffer, size_t *length, int *status);

char *CDemangle_cxx(const char *mangled) {
    int status = 0;
    char *result = __cxa_demangle(mangled, NULL, NULL, &status);
    return status == 0 ? result : NULL;
}
