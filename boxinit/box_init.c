/* PID 1 of a box (built static with musl, embedded into boxer, bind-mounted
 * read-only at /.boxer/init).  A box's processes are started by `runsc exec`
 * and re-parented to PID 1 when their parent dies: without a reaper they
 * would stay zombies for the life of the box.  So this program only reaps,
 * and leaves on SIGTERM (the box is being stopped; runsc then ends the
 * sandbox).  It relies on nothing in the image. */
#include <errno.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

static void on_signal(int sig)
{
    (void)sig;
}

int main(void)
{
    sigset_t set;
    struct sigaction sa;
    int sig;

    /* A PID 1 drops signals whose disposition is the default: give them a
     * (never run: they stay blocked) handler so sigwait sees them. */
    sa.sa_handler = on_signal;
    sa.sa_flags = 0;
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGTERM, &sa, NULL) < 0 || sigaction(SIGINT, &sa, NULL) < 0 ||
        sigaction(SIGCHLD, &sa, NULL) < 0)
        return 1;

    /* Every signal we care about is taken synchronously: no handler runs
     * between the reaping calls. */
    sigemptyset(&set);
    sigaddset(&set, SIGCHLD);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    if (sigprocmask(SIG_BLOCK, &set, NULL) < 0)
        return 1;
    for (;;) {
        /* Reap everything already dead before sleeping (a SIGCHLD can stand
         * for many children). */
        while (waitpid(-1, NULL, WNOHANG) > 0)
            ;
        if (sigwait(&set, &sig) != 0)
            continue;
        if (sig == SIGTERM || sig == SIGINT)
            return 0;
    }
}
