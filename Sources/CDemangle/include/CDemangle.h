#ifndef CDEMANGLE_H
#define CDEMANGLE_H
#include <stddef.h>

/// Demangles an Itanium C++ symbol with the C++ runtime's demangler. Returns a malloc'd string the caller
/// frees, or NULL when `mangled` is not a C++ symbol.
char *CDemangle_cxx(const char *mangled);

#endif
