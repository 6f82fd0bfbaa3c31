#include "common/tmpdir.h"

#include <stdlib.h>

const char *q2s_temporary_directory(void)
{
    const char *dir = getenv("TMPDIR");

    return dir && *dir ? dir : "/tmp";
}
