/* The public API's export mark: the library is built with
 * -fvisibility=hidden, so only what a public header marks FG_API is in its
 * dynamic symbol table; internal helpers shared between its files are not. */
#ifndef FLOWGRAD_TENSOR_EXPORT_H
#define FLOWGRAD_TENSOR_EXPORT_H

#if defined(__GNUC__)
#define FG_API __attribute__((visibility("default")))
#else
#define FG_API
#endif

#endif
