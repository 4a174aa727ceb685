#ifndef KPROXY_CNFTABLES_SHIM_H
#define KPROXY_CNFTABLES_SHIM_H
#include <stdio.h>
#include <nftables/libnftables.h>

/* setns(2) and CLONE_NEWNET sit behind _GNU_SOURCE in glibc's headers, which Swift's Glibc
   module does not define: declare what the data plane needs to enter a network namespace. */
extern int setns(int fd, int nstype);
static inline int kproxy_enter_netns(int fd) { return setns(fd, 0x40000000 /* CLONE_NEWNET */); }
#endif
