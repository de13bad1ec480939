/* SPDX-License-Identifier: MIT */
/*
 * control: QEMU's control side. `migwire migrate` drives a whole live
 * migration of a plain-QEMU VM through its QMP socket: preflight, a dirty
 * rate estimate, the migration parameters, the migrate command with an
 * exec: URI that runs `migwire send`, progress, timeout and the result
 * (docs/usage.md, "migwire migrate").
 *
 * Dependencies: common/ and json-c; the data plane is the `migwire send`
 * that QEMU starts, so nothing here links transport/.
 */
#ifndef MW_CONTROL_H
#define MW_CONTROL_H

/*
 * `migwire migrate` with argv[0] == "migrate". Returns the exit status:
 * 0 when QEMU reports the migration completed, 1 on any failure, 2 on a
 * usage error. Context: the main thread; installs SIGINT/SIGTERM handlers.
 */
int mw_cmd_migrate(int argc, char **argv);

#endif
