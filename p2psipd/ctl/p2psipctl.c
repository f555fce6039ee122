/*
 * p2psipctl.c: the command-line client of p2psipd's control socket (being written).
 */
#include <stdio.h>

int main(void)
{
    fputs("p2psipctl: not implemented yet\n", stderr);
    return 2;
}
