#!/bin/sh
# Turn a file into a C array so the binary carries it (no runtime lookups).
#   tools/embed.sh SYMBOL FILE > out.c
set -eu
sym=$1
file=$2
echo "/* generated from $file by tools/embed.sh; do not edit */"
echo "#include <stddef.h>"
echo "const unsigned char ${sym}[] = {"
od -An -v -tx1 "$file" | sed -e 's/ *$//' -e 's/ \([0-9a-f][0-9a-f]\)/0x\1,/g' -e 's/^/    /'
echo "    0x00};"
echo "const size_t ${sym}_len = sizeof(${sym}) - 1;"
