/* The OpenAPI document served at /swagger/openapi.json. */
#ifndef BOXER_OPENAPI_H
#define BOXER_OPENAPI_H

extern const char boxer_openapi_json[];
extern const char boxer_swagger_html[];

#endif
