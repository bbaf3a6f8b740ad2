/* notify.h -- systemd's service notification protocol (sd_notify), without libsystemd. */
#ifndef SVCMAPD_NOTIFY_H
#define SVCMAPD_NOTIFY_H

/* Sends `state` ("READY=1", "RELOADING=1", "STOPPING=1", "STATUS=...") to
 * the datagram socket named in $NOTIFY_SOCKET, if there is one (a unit of
 * Type=notify). Failures are ignored: the service manager is only told. */
void notify(const char *state);

/* RELOADING=1 with the MONOTONIC_USEC systemd 253 asks for. */
void notify_reloading(void);

#endif
