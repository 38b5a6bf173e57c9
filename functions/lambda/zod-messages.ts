import { config } from 'zod/mini';
import en from 'zod/v4/locales/en.js';

/**
 * zod/mini loads no locale, so every issue would read "Invalid input". The English one alone (a few kB,
 * unlike full zod's every language) keeps the messages operators see, e.g. "expected string, received
 * number". Imported for its effect by the modules that validate.
 */
config(en());
