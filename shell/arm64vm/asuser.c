/* asuser UID COMMAND [ARG...]: runs COMMAND as UID (and as that GID, with no
 * supplementary groups), for the arm64 VM's scenarios as a user who is not root:
 * busybox's setpriv cannot change user ids. Built by shell/arm64vm.sh with zig
 * cc for aarch64-linux-musl, static. */
#include <grp.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: asuser UID COMMAND [ARG...]\n");
        return 2;
    }
    char *end;
    long id = strtol(argv[1], &end, 10);
    if (*end != '\0' || id <= 0) {
        fprintf(stderr, "asuser: bad uid %s\n", argv[1]);
        return 2;
    }
    if (setgroups(0, NULL) != 0 || setgid((gid_t)id) != 0 || setuid((uid_t)id) != 0) {
        perror("asuser: cannot change user");
        return 125;
    }
    execvp(argv[2], argv + 2);
    perror("asuser: exec");
    return 127;
}
