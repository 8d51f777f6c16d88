/* dwarf.c: a target for probes by name (docs/DESIGN.md §10). It prints
 * every value it passes, so that a test compares what a probe fetched by
 * name with what the program says it passed. Built with -O0 and -O2 -g. */
#include <stdio.h>
#include <stdlib.h>

struct point {
	int x;
	long y;
	const char *name;
	char tag[8];
};

enum color { RED, GREEN = 5, BLUE }; const char *color_name(enum color c); /* after main: lines stay put */

static volatile int sink;

/* twice is inlined at both of its calls with -O2: a probe on its line
 * is a probe on each copy. */
static inline int twice(int v)
{
	int r = v * 2;
	sink = r;
	return r;
}

__attribute__((noinline)) int work(int a, long b, const char *s, struct point *p, enum color c)
{
	int sum = a + p->x;
	sink = sum; /* line of the local: sum is computed on the line before */
	printf("work a=%d b=%ld s=%s x=%d y=%ld name=%s tag=%s c=%s sum=%d\n", a, b, s, p->x, p->y, p->name, p->tag, color_name(c), sum);
	return sum * 3;
}

__attribute__((noinline)) unsigned long total(unsigned long n)
{
	unsigned long t = 0;
	for (unsigned long i = 0; i < n; i++)
		t += twice((int)i);
	return t + twice(7);
}

int main(int argc, char **argv)
{
	int n = argc > 1 ? atoi(argv[1]) : 3;
	static const char *names[] = {"pointy", "flat", "round"};
	for (int i = 0; i < n; i++) {
		struct point pt = {.x = 7 + i, .y = -100L * i, .name = names[i % 3]};
		snprintf(pt.tag, sizeof pt.tag, "t%d", i);
		int r = work(i, 1000L + i, i % 2 ? "odd" : "even", &pt, i % 3 == 2 ? (enum color)7 : i % 2 ? BLUE : GREEN);
		printf("ret=%d\n", r);
	}
	printf("total=%lu\n", total((unsigned long)n));
	return 0;
}

/* color_name is the enumerator's name of c, or its number when it has
 * none: what a probe prints for an enum by name. */
const char *color_name(enum color c)
{
	static char num[16];
	switch (c) {
	case RED: return "RED";
	case GREEN: return "GREEN";
	case BLUE: return "BLUE";
	}
	snprintf(num, sizeof num, "%d", (int)c);
	return num;
}
