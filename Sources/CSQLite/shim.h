#ifndef ADAPTERD_CSQLITE_SHIM_H
#define ADAPTERD_CSQLITE_SHIM_H
#include <sqlite3.h>
#endif
