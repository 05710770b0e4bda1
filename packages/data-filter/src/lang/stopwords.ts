/**
 * Frequent function words per Latin-script language, chosen to overlap as little as possible between languages
 * (words shared by two of them, such as "a", "in", "de", "die", are left out). Used as evidence by the language id.
 */
export const LATIN_STOPWORDS: Record<string, readonly string[]> = {
  en: ['the', 'and', 'of', 'to', 'is', 'that', 'it', 'was', 'for', 'with', 'as', 'his', 'he', 'be', 'by', 'on', 'are', 'this', 'had', 'not', 'at', 'but', 'from', 'have', 'they', 'you', 'which', 'or', 'her', 'she', 'were', 'their', 'an', 'been', 'has', 'will', 'would', 'there', 'what', 'all', 'we', 'when', 'my', 'your', 'how', 'many', 'much', 'each', 'if', 'then', 'so', 'him', 'thou', 'thy', 'shall'],
  fr: ['le', 'la', 'les', 'et', 'des', 'du', 'un', 'une', 'est', 'pour', 'pas', 'que', 'qui', 'dans', 'sur', 'au', 'avec', 'il', 'elle', 'nous', 'vous', 'ce', 'sont', 'mais', 'ou', 'aux', 'ses', 'leur', 'cette', 'été', 'être', 'très'],
  de: ['der', 'und', 'das', 'ist', 'nicht', 'ein', 'eine', 'zu', 'den', 'von', 'mit', 'sich', 'des', 'auf', 'für', 'dem', 'auch', 'wird', 'sie', 'ich', 'wir', 'aber', 'nach', 'bei', 'oder', 'wie', 'werden', 'sind', 'über', 'einer', 'dass'],
  es: ['el', 'los', 'las', 'y', 'del', 'por', 'con', 'una', 'para', 'es', 'lo', 'como', 'pero', 'sus', 'más', 'ya', 'fue', 'este', 'está', 'entre', 'cuando', 'muy', 'sin', 'sobre', 'también', 'hasta', 'desde', 'nos', 'donde', 'ser'],
  it: ['il', 'di', 'che', 'è', 'della', 'per', 'sono', 'gli', 'dei', 'nel', 'alla', 'delle', 'anche', 'questo', 'come', 'più', 'ha', 'ma', 'essere', 'molto', 'degli', 'dalla', 'nella', 'questa', 'suo', 'loro', 'stato'],
  pt: ['o', 'os', 'não', 'uma', 'do', 'da', 'dos', 'das', 'em', 'com', 'mais', 'foi', 'ao', 'pelo', 'pela', 'seu', 'sua', 'também', 'você', 'ele', 'ela', 'isso', 'são', 'muito', 'já'],
  nl: ['het', 'een', 'van', 'en', 'niet', 'zijn', 'op', 'te', 'dat', 'met', 'voor', 'er', 'maar', 'ook', 'aan', 'wordt', 'nog', 'bij', 'naar', 'deze', 'worden', 'heeft', 'zij', 'wij', 'uit', 'wat', 'dan', 'hij'],
};
