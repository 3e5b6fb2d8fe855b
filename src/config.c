/* config.c: the configuration: built-in defaults (the same as
 * configs/music.ini), INI loading through inih, validation.
 * TODO(config helper): ic_config_load, ic_config_set, ic_config_validate,
 * ic_config_write, ic_clock_kind_name/parse. */
#include "internal.h"

static void add_named(ic_named_weight *arr, int *n, const char *name, float w)
{
    ic__strlcpy(arr[*n].name, name, IC_NAME_MAX);
    arr[*n].weight = w;
    (*n)++;
}

void ic_config_default(ic_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    ic__strlcpy(cfg->time_col, "ts", IC_NAME_MAX);
    ic__strlcpy(cfg->user_col, "user", IC_NAME_MAX);
    ic__strlcpy(cfg->item_col, "item", IC_NAME_MAX);
    ic__strlcpy(cfg->tz_col, "tz", IC_NAME_MAX);
    cfg->tz_default_min = 0;
    cfg->delimiter = ',';
    cfg->multi_sep = '|';

    const char *fields[] = {"genre", "mood", "lang"};
    for (int i = 0; i < 3; i++) ic__strlcpy(cfg->field[i], fields[i], IC_NAME_MAX);
    cfg->n_fields = 3;

    cfg->n_clock = 3;
    for (int i = 0; i < 3; i++) cfg->clock_field[i] = i;
    cfg->window_days = 30;
    cfg->top_k = 3;
    cfg->refresh = IC_REFRESH_REALTIME;

    /* The paper's alpha, beta, gamma, omega. */
    add_named(cfg->action, &cfg->n_actions, "like", 1.0f);
    add_named(cfg->action, &cfg->n_actions, "finish", 1.0f);
    add_named(cfg->action, &cfg->n_actions, "skip", -1.0f);
    add_named(cfg->action, &cfg->n_actions, "dislike", -1.0f);

    add_named(cfg->task, &cfg->n_tasks, "finish", 1.0f);
    add_named(cfg->task, &cfg->n_tasks, "like", 1.0f);

    cfg->clock = IC_CLOCK_GAUSSIAN;
    cfg->clock_sigma = 1.0f;
    cfg->clock_pool = IC_POOL_MEAN;
    cfg->dim = 16;
    cfg->cross_layers = 3;
    cfg->cross_rank = 0;
    cfg->n_mlp = 3;
    cfg->mlp[0] = 256;
    cfg->mlp[1] = 128;
    cfg->mlp[2] = 64;
    cfg->structure = IC_STRUCT_PARALLEL;

    cfg->batch = 512;
    cfg->lr = 1e-3f;
    cfg->emb_lr = 0.05f;
    cfg->emb_optim = IC_OPT_ADAGRAD;
    cfg->l2_emb = 1e-6f;
    cfg->init_std = 0.01f;
    cfg->adam_beta1 = 0.9f;
    cfg->adam_beta2 = 0.999f;
    cfg->adam_eps = 1e-8f;
    cfg->seed = 1;
    cfg->split_train = 0.75;
    cfg->split_valid = 0.125;
}

int ic_config_field_index(const ic_config *cfg, const char *name)
{
    for (int i = 0; i < cfg->n_fields; i++)
        if (!strcmp(cfg->field[i], name)) return i;
    return -1;
}
