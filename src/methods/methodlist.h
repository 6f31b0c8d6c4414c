/* Every attribution method: SAL_METHOD(x) names `const sal_method sal_method_x` defined in one of
 * this folder's files. One line per method; the order is the order `saliency methods` lists. */
SAL_METHOD(gradient)
SAL_METHOD(gradient_x_input)
