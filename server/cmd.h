/*
 * cmd.h - the verbs of dedup-server, one file each (cmd_<verb>.c), called
 * from the table in main.c with argv[0] = the verb. Each returns the
 * process exit code: 0 ok, 1 error, 2 usage error.
 */
#ifndef SRV_CMD_H
#define SRV_CMD_H

#define CMD_OK 0
#define CMD_ERROR 1
#define CMD_USAGE 2

int cmd_init(int argc, char **argv);
int cmd_token(int argc, char **argv);
int cmd_serve(int argc, char **argv);

/* Usage texts, printed by `help` and on usage errors. */
extern const char cmd_init_usage[];
extern const char cmd_token_usage[];
extern const char cmd_serve_usage[];

#endif
