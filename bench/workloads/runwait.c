/* runwait: the runner's measuring launcher.
 *
 *   runwait RESULT TIMEOUT PRELOAD PROG [ARGS...]
 *
 * Forks, sets LD_PRELOAD=PRELOAD in the child (unless PRELOAD is empty),
 * execs PROG, waits with wait4() and writes "wall_seconds maxrss_kib
 * status" to the file RESULT (status: exit code, or -signal).  After
 * TIMEOUT seconds (0 = none) the child is killed.
 *
 * Why not fork from the Python runner directly: ru_maxrss is the peak of
 * the process over its whole life, including the copy of the parent it was
 * before exec(), so a child forked from a 20 MiB Python process never
 * reports less than 20 MiB.  This launcher is small, so its children
 * start from almost nothing. */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static volatile pid_t child;

static void on_alarm(int sig)
{
	(void)sig;
	if (child > 0)
		kill(child, SIGKILL);
}

int main(int argc, char **argv)
{
	if (argc < 5) {
		fprintf(stderr, "usage: runwait RESULT TIMEOUT PRELOAD PROG "
			"[ARGS...]\n");
		return 2;
	}
	const char *result = argv[1];
	unsigned timeout = (unsigned)atoi(argv[2]);
	const char *preload = argv[3];
	struct timespec t0, t1;
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_alarm;
	sigaction(SIGALRM, &sa, NULL);

	clock_gettime(CLOCK_MONOTONIC, &t0);
	pid_t pid = fork();
	if (pid < 0) {
		perror("runwait: fork");
		return 2;
	}
	if (pid == 0) {
		if (preload[0] != '\0')
			setenv("LD_PRELOAD", preload, 1);
		else
			unsetenv("LD_PRELOAD");
		execv(argv[4], argv + 4);
		fprintf(stderr, "runwait: exec %s: %s\n", argv[4],
			strerror(errno));
		_exit(127);
	}
	child = pid;
	if (timeout > 0)
		alarm(timeout);
	int status;
	struct rusage ru;
	while (wait4(pid, &status, 0, &ru) < 0) {
		if (errno != EINTR) {
			perror("runwait: wait4");
			return 2;
		}
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	double wall = (double)(t1.tv_sec - t0.tv_sec) +
		      (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	int code = WIFEXITED(status) ? WEXITSTATUS(status)
				     : -WTERMSIG(status);
	FILE *f = fopen(result, "w");
	if (f == NULL) {
		perror("runwait: result file");
		return 2;
	}
	double user = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6;
	double sys = (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
	fprintf(f, "%.6f %ld %d %.6f %.6f\n", wall, ru.ru_maxrss, code, user, sys);
	fclose(f);
	return 0;
}
