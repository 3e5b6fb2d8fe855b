/* model.h: internal interface of the model's pieces besides the dense
 * network (nn.h): collisionless embedding tables (embed.c), the optimizers
 * (optim.c), and model.c's hooks for the tests and the PyTorch fixture
 * (reading and setting weights by name and rows by id). Not public API. */
#ifndef IC_MODEL_H
#define IC_MODEL_H

#include "nn.h"

/* ---- embed.c: a collisionless embedding table ------------------------------
 * A hash table (open addressing, linear probing) from a 64-bit id to a row;
 * rows are stored densely in insertion order, each with its optimizer
 * state. Ids are never evicted. Id 0 ("no value") is never stored. */
typedef struct {
    int d;
    ic_optim_kind opt;  /* which state rows carry */
    size_t n, cap;      /* rows used, allocated */
    uint64_t *ids;      /* (cap) the id of each row */
    float *rows;        /* (cap, d) */
    float *s1, *s2;     /* (cap, d): Adagrad sum of squares in s1; Adam m in s1, v in s2 */
    uint32_t *steps;    /* (cap) Adam: updates this row has had */
    int32_t *mark;      /* (cap) the row's index u in the batch being built, -1 none */
    uint32_t *slot;     /* (hcap) row + 1, 0 empty */
    size_t hcap;        /* power of two, >= 2 n */
} ic__emb;

void ic__emb_init(ic__emb *t, int d, ic_optim_kind opt);
void ic__emb_free(ic__emb *t);
/* The row of id, or -1. */
int64_t ic__emb_find(const ic__emb *t, uint64_t id);
/* The row of id, adding a zero row (and zero state) if absent; *added says
 * which (may be NULL). id must not be 0. Aborts on out of memory. */
int64_t ic__emb_add(ic__emb *t, uint64_t id, int *added);
/* Makes room for n rows in all (no reallocation until then). */
void ic__emb_reserve(ic__emb *t, size_t n);

/* ---- optim.c ---------------------------------------------------------------- */

/* PyTorch's Adam (no weight decay) on n parameters at step t (1-based):
 * m, v moments; p -= lr/(1-b1^t) * m / (sqrt(v)/sqrt(1-b2^t) + eps). */
void ic__adam_update(float *p, const float *g, float *m, float *v, size_t n, float lr, float b1,
                     float b2, float eps, long t);
/* The same as a plain scalar loop: the reference of ic__adam_update, which
 * runs 8 lanes at a time where the CPU has AVX (equal to float rounding). */
void ic__adam_update_ref(float *p, const float *g, float *m, float *v, size_t n, float lr,
                         float b1, float b2, float eps, long t);
/* One embedding row (d) with gradient g + l2 * p. Adagrad as PyTorch
 * (eps 1e-10, zero initial sum); Adam with the row's own step count. */
void ic__adagrad_row(float *p, const float *g, float *sum, int d, float lr, float l2);
void ic__adam_row(float *p, const float *g, float *m, float *v, uint32_t *step, int d, float lr,
                  float b1, float b2, float eps, float l2);

/* ---- model.c hooks for tests --------------------------------------------------
 * Tables are numbered 0 user, 1 item, 2 + f field f. */
#define IC__TAB_USER 0
#define IC__TAB_ITEM 1

ic__net_f *ic__model_net(ic_model *m);
const ic__shape *ic__model_shape(const ic_model *m);
const ic__plan *ic__model_plan(const ic_model *m);
ic__emb *ic__model_table(ic_model *m, int tab);
/* A named parameter (grad = 0) or gradient (grad = 1); NULL if this model
 * has no such tensor. *n receives its size. */
float *ic__model_tensor(ic_model *m, const char *name, int grad, size_t *n);
/* Sets the row of id in table tab to v (d), adding it (zero optimizer
 * state) if absent. */
void ic__model_set_row(ic_model *m, int tab, uint64_t id, const float *v);
/* The row of id in table tab, or NULL. */
const float *ic__model_row(ic_model *m, int tab, uint64_t id);
/* Builds the batch plan of s[0..B) into the model's plan and copies the
 * rows it reads into the network's R. train = 1 adds unseen ids (drawing
 * their rows); labels = 1 copies the labels. Call ic__model_plan_end after. */
void ic__model_plan_begin(ic_model *m, const ic_sample *s, int B, int train, int labels);
void ic__model_plan_end(ic_model *m);
/* on = 1: the model runs its plain reference paths instead of the fast
 * ones (the single-pass plan over the clock views, ...), for the tests
 * that compare the two. Results must agree to float rounding. */
void ic__model_set_reference(ic_model *m, int on);
/* 1 when the model's last ic_model_predict took the shared path of a
 * ranking request (one user, time and clock for every sample; model.c's
 * find_shared), 0 when it took the plain path. For the tests. */
int ic__model_last_shared(const ic_model *m);

#endif
