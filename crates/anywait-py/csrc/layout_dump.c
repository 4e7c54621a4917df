/*
 * Prints the layout table of layout.c as a Rust array of words, so that build.rs can
 * make it a compile-time constant (every offset then folds into the instructions that
 * use it). The table is made of `long`s only, so this is a plain word dump, no logic.
 */
#include "layout.c"
#include <stdio.h>

int main(void)
{
    const long *words = (const long *)&anywait_layout;
    size_t n = sizeof anywait_layout / sizeof(long);
    printf("[");
    for (size_t i = 0; i < n; i++) {
        printf("%s%ld", i ? ", " : "", words[i]);
    }
    printf("]\n");
    return 0;
}
