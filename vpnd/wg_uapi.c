/* wg_uapi.c - placeholder */
