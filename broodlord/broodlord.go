// Package broodlord holds the reinforcement policy: when a vassal sends byte
// 30 ("send reinforcements"), the Emperor may spawn zergs for it, up to
// emperor-broodlord per parent.
//
// uWSGI names every zerg of a parent alike, counts them globally and treats
// any name containing ':' as a zerg (bugs B19, B20). Here each zerg has its
// own name, PARENT:zerg:N, zergs are counted per parent, and only names this
// package made are zergs.
package broodlord

import (
	"strconv"
	"strings"
)

const zergInfix = ":zerg:"

// ZergName names the n-th zerg of parent.
func ZergName(parent string, n int) string {
	return parent + zergInfix + strconv.Itoa(n)
}

// Parent returns the parent of a zerg name made by ZergName, and false for
// any other name (a glob path or a database name may well contain ':').
func Parent(name string) (string, bool) {
	i := strings.LastIndex(name, zergInfix)
	if i <= 0 {
		return "", false
	}
	n, err := strconv.Atoi(name[i+len(zergInfix):])
	if err != nil || n < 1 || strconv.Itoa(n) != name[i+len(zergInfix):] {
		return "", false
	}
	return name[:i], true
}

// Pool tracks the zergs of each parent. The zero value refuses every
// reinforcement; set Max. It is not safe for concurrent use: the Emperor's
// loop owns it.
type Pool struct {
	// Max is the number of zergs one parent may have (emperor-broodlord).
	Max   int
	zergs map[string]map[int]bool
}

// Reinforce returns the name of a new zerg for parent, numbered with the
// lowest free number, or false when parent already has Max zergs.
func (p *Pool) Reinforce(parent string) (string, bool) {
	live := p.zergs[parent]
	if len(live) >= p.Max {
		return "", false
	}
	if p.zergs == nil {
		p.zergs = map[string]map[int]bool{}
	}
	if live == nil {
		live = map[int]bool{}
		p.zergs[parent] = live
	}
	n := 1
	for live[n] {
		n++
	}
	live[n] = true
	return ZergName(parent, n), true
}

// Retire forgets a zerg that is gone, freeing its number.
func (p *Pool) Retire(name string) {
	parent, ok := Parent(name)
	if !ok {
		return
	}
	i := strings.LastIndex(name, zergInfix)
	n, _ := strconv.Atoi(name[i+len(zergInfix):])
	delete(p.zergs[parent], n)
	if len(p.zergs[parent]) == 0 {
		delete(p.zergs, parent)
	}
}

// Count is the number of live zergs of parent.
func (p *Pool) Count(parent string) int { return len(p.zergs[parent]) }
