package emperor

import "errors"

// InjectPollFaults makes e's poller refuse the next watch (adding a new
// process's fds) when failWatch is set, and every re-arm when failRearm
// is set, as a kernel out of epoll watches would. Call it before Run.
func InjectPollFaults(e *Emperor, failWatch, failRearm func() bool) {
	e.wrapPoll = func(r fdRegistry) fdRegistry { return faultyPoll{r, failWatch, failRearm} }
}

type faultyPoll struct {
	fdRegistry
	failWatch, failRearm func() bool
}

var errInjected = errors.New("epoll_ctl: no space left on device (injected)")

func (f faultyPoll) add(fd int, tok uint64) error {
	if f.failWatch != nil && f.failWatch() {
		return errInjected
	}
	return f.fdRegistry.add(fd, tok)
}

func (f faultyPoll) rearm(fd int, tok uint64) error {
	if f.failRearm != nil && f.failRearm() {
		return errInjected
	}
	return f.fdRegistry.rearm(fd, tok)
}
