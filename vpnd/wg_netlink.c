/* wg_netlink.c - placeholder */
